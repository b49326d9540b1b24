-- Residents at each month's end, from folkbokföring's own zone (the denominator of per-capita KPIs).
-- Same residency rule as the citizen index: entry events open residency, exits close it.
with person as (
    select person_pseudonym,
        max(event_date) filter (event in ('GRUND', 'FODD', 'INFLYTTAD')) as last_entry,
        min(event_date) filter (event in ('GRUND', 'FODD', 'INFLYTTAD')) as first_entry,
        max(event_date) filter (event in ('UTFLYTTAD', 'AVLIDEN')) as last_exit
    from {{ ref('stg_folkbokforing__aviseringar') }}
    group by person_pseudonym
),
spans as (
    select person_pseudonym,
        coalesce(first_entry, date '1900-01-01') as valid_from,
        case when last_exit >= coalesce(last_entry, last_exit) then last_exit end as valid_to
    from person
)
select m.month, count(s.person_pseudonym) as residents
from {{ ref('dim_month') }} m
left join spans s on s.valid_from <= m.month_end and (s.valid_to is null or s.valid_to > m.month_end)
group by m.month
