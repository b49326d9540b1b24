-- Economic aid paid per applicant and month (socialtjänst's own zone, unit-scoped pseudonyms).
select
    person_pseudonym,
    month::date as month,
    amount_sek
from {{ source('socialtjanst', 'ekonomiskt_bistand') }}
