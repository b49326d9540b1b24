-- Year-9 merit values, dated by the delivery month (July) in which they arrive.
select
    person_pseudonym,
    school_year,
    merit_value,
    strptime(_delivery, '%Y-%m')::date as month
from {{ source('skola', 'meritvarde') }}
