-- Direkt feedback: citizens' ratings 1-5 per förvaltning, enhet and service. The comment is not
-- selected: free text stays in the unit's own zone and is never published.
select
    rating_id,
    rated_at,
    date_trunc('month', rated_at)::date as month,
    forvaltning,
    enhet,
    service,
    rating,
    _delivery
from {{ source('direkt_feedback', 'betyg') }}
