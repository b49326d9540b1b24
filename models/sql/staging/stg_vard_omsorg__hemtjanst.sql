-- Home-care hours granted and performed per person and month.
select
    person_pseudonym,
    month::date as month,
    granted_hours,
    performed_hours
from {{ source('vard_omsorg', 'hemtjanst') }}
