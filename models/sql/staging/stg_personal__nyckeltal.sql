-- Personal: the payroll system's figures per förvaltning, enhet and month (no person data). Shares are
-- turned back into hours here, so every level above the enhet is a weighted sum, never a mean of shares.
select
    month::date as month,
    forvaltning,
    enhet,
    headcount,
    leavers,
    scheduled_hours,
    sick_short_pct * scheduled_hours / 100 as sick_short_hours,
    sick_long_pct * scheduled_hours / 100 as sick_long_hours,
    worked_hours,
    overtime_pct * worked_hours / 100 as overtime_hours,
    hourly_paid_pct * worked_hours / 100 as hourly_paid_hours,
    cost_sek,
    cost_budget_sek,
    _delivery
from {{ source('personal', 'nyckeltal') }}
