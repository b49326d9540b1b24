-- Submissions per e-service, digital or on paper (submitter dropped).
select
    submission_id,
    e_service,
    channel,
    submitted_at,
    date_trunc('month', submitted_at)::date as month
from {{ source('e_tjanster', 'inlamningar') }}
