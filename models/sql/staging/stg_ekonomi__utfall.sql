-- Ekonomi: budget, outcome and year-end forecast per förvaltning, enhet and month (SEK, no person data).
select
    month::date as month,
    forvaltning,
    enhet,
    budget_sek,
    outcome_sek,
    forecast_sek,
    _delivery
from {{ source('ekonomi', 'utfall') }}
