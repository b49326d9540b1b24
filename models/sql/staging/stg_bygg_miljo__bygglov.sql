-- Building-permit cases decided in the month (applicant dropped: not needed for case statistics).
select
    case_id,
    case_type,
    received_date::date as received_date,
    decided_date::date as decided_date,
    date_diff('day', received_date::date, decided_date::date) as handling_days,
    fee_sek
from {{ source('bygg_miljo', 'bygglov') }}
