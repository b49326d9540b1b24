-- Case status events from every case system; the applicant is dropped (case flow counts cases).
select
    case_id,
    source_system,
    forvaltning,
    case_type,
    status,
    event_at
from {{ source('arendehandelser', 'statushandelser') }}
