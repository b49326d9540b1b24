-- Personal: the payroll system's figures per förvaltning, enhet and month (no person data). Shares are
-- turned back into hours here, so every level above the enhet is a weighted sum, never a mean of shares.
-- A held delivery (a quarantined row holds the whole month: quarantine_holds) stays out, so no förvaltning
-- or kommun total is summed over a month with an enhet missing. held_deliveries is read by its attached
-- name: Dagster takes one source table per unit asset.
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
where _delivery not in (select _delivery from unit_personal.main.held_deliveries)
