-- Folkbokföring's change notices, unit-scoped pseudonyms: only residency per person is used downstream.
select
    person_pseudonym,
    event,
    event_date::date as event_date,
    district
from {{ source('folkbokforing', 'aviseringar') }}
