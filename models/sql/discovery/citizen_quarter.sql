-- The citizen-quarter panel for cross-unit discovery: one row per person registered in the quarter,
-- with what each unit shares about them that quarter. Person level, keyed by the central citizen key:
-- it stays in the cross-unit zone (database cross_unit, schema discovery) and reaches dashboards only
-- as disclosure-controlled aggregates through the publish step.
-- depends_on: {{ source('cross_unit', 'citizen_index') }}
-- depends_on: {{ source('cross_socialtjanst', 'ekonomiskt_bistand') }}
-- depends_on: {{ source('cross_skola', 'inskrivning') }}
-- depends_on: {{ source('cross_vard_omsorg', 'hemtjanst') }}
-- depends_on: {{ source('cross_kontaktcenter', 'kontakter') }}
-- depends_on: {{ source('cross_e_tjanster', 'inlamningar') }}
-- depends_on: {{ source('cross_bygg_miljo', 'bygglov') }}
-- depends_on: {{ source('cross_arendehandelser', 'statushandelser') }}
-- School absence is measured per term: a term's absence sits on the quarter the term ends in (VT: Q2,
-- HT: Q4), when it is known. has_high_absence: at least 15 % absence in that term (Skolverket's level
-- for high absence). has_merit, merit_value: the year-9 merit value (0-340) on the quarter it is delivered
-- in (July: the quarter after the school year); merit_value is 0 where has_merit is false, not a value.
-- has_household_economic_aid: someone in the person's household (the citizen
-- index's latest household key) had economic aid that quarter; the aid contract shares the applicant
-- only, so this is how a pupil's exposure is seen. has_child_investigation: only where socialtjänst shares
-- child investigations as a derived per-person quarter flag (strong secrecy); its contract shares yearly
-- counts, which have no citizen key, so the column stays NULL (not shared) unless a steward approves one.
{%- set by_delivery = ("strptime(_delivery, '%Y-%m')", ['_delivery']) %}
{%- set indicators = [
    {'name': 'economic_aid', 'unit': 'socialtjanst', 'dataset': 'ekonomiskt_bistand',
     'quarter': [('quarter', ['quarter']), ('month::date', ['month']), by_delivery],
     'has': [('bool_or(has_economic_aid)', ['has_economic_aid']), ('true', [])],
     'measures': [('months_with_aid', [('sum(months_with_aid)', ['months_with_aid']),
                                       ('count(distinct month)', ['month'])])]},
    {'name': 'high_absence', 'unit': 'skola', 'dataset': 'franvaro',
     'quarter': [('quarter', ['quarter']),
                 ("make_date(substr(term, 3, 4)::int, case when term like 'VT%' then 4 else 10 end, 1)", ['term'])],
     'has': [('bool_or(absence_pct >= 15)', ['absence_pct'])],
     'measures': [('absence_pct', [('max(absence_pct)', ['absence_pct'])])]},
    {'name': 'merit', 'unit': 'skola', 'dataset': 'meritvarde',
     'quarter': [('quarter', ['quarter']), by_delivery],
     'has': [('true', [])],
     'measures': [('merit_value', [('max(merit_value::decimal(38, 6))', ['merit_value'])])]},
    {'name': 'school', 'unit': 'skola', 'dataset': 'inskrivning',
     'quarter': [('quarter', ['quarter']), by_delivery],
     'has': [('bool_or(enrolled)', ['enrolled']), ('true', [])],
     'measures': []},
    {'name': 'home_care', 'unit': 'vard_omsorg', 'dataset': 'hemtjanst',
     'quarter': [('quarter', ['quarter']), ('month::date', ['month']), by_delivery],
     'has': [('bool_or(has_home_care)', ['has_home_care']), ('true', [])],
     'measures': [('home_care_granted_hours', [('sum(granted_hours::decimal(38, 6))', ['granted_hours'])])]},
    {'name': 'nursing_home', 'unit': 'vard_omsorg', 'dataset': 'sarskilt_boende',
     'quarter': [('quarter', ['quarter']), ('move_in_date::date', ['move_in_date']), by_delivery],
     'has': [('bool_or(moved_to_nursing_home)', ['moved_to_nursing_home']), ('true', [])],
     'measures': []},
    {'name': 'safety_alarm', 'unit': 'vard_omsorg', 'dataset': 'trygghetslarm',
     'quarter': [('quarter', ['quarter']), ('month::date', ['month']), by_delivery],
     'has': [('bool_or(has_safety_alarm)', ['has_safety_alarm']), ('true', [])],
     'measures': [('safety_alarms', [('sum(alarms)', ['alarms'])])]},
    {'name': 'contact', 'unit': 'kontaktcenter', 'dataset': 'kontakter',
     'quarter': [('quarter', ['quarter']), ('contacted_at::date', ['contacted_at']), by_delivery],
     'has': [('true', [])],
     'measures': [('contacts', [('sum(contacts)', ['contacts']), ('count(*)', ['contact_id'])]),
                  ('phone_contacts', [("count(*) filter (channel = 'telefon')", ['channel', 'contact_id'])])]},
    {'name': 'e_service', 'unit': 'e_tjanster', 'dataset': 'inlamningar',
     'quarter': [('quarter', ['quarter']), ('submitted_at::date', ['submitted_at']), by_delivery],
     'has': [('true', [])],
     'measures': [('submissions', [('count(*)', ['submission_id'])]),
                  ('paper_submissions', [("count(*) filter (channel = 'papper')", ['channel', 'submission_id'])])]},
    {'name': 'building_permit', 'unit': 'bygg_miljo', 'dataset': 'bygglov',
     'quarter': [('quarter', ['quarter']), ('received_date::date', ['received_date']), by_delivery],
     'has': [('true', [])],
     'measures': [('building_permits', [('count(distinct case_id)', ['case_id'])])]},
    {'name': 'hub_case', 'unit': 'arendehandelser', 'dataset': 'statushandelser',
     'quarter': [('quarter', ['quarter']), ('event_at::date', ['event_at']), by_delivery],
     'has': [('true', [])],
     'measures': [('hub_cases', [('count(distinct case_id)', ['case_id'])])]},
    {'name': 'child_investigation', 'unit': 'socialtjanst', 'dataset': 'barnutredningar',
     'quarter': [('quarter', ['quarter'])],
     'has': [('bool_or(has_child_investigation)', ['has_child_investigation']), ('true', [])],
     'measures': []},
] %}
{%- set index = panel_relation('main', 'citizen_index') %}
with quarters as (
    select distinct quarter, quarter + interval 3 month - interval 1 day as quarter_end
    from {{ ref('dim_month') }}
),
spine as (
{%- if index is not none %}
    -- The district at the quarter's end (or when the person left): a move later does not change a
    -- past quarter, so published history stays put between publishes.
    select ci.citizen_key, q.quarter, ci.birth_year, ci.sex,
        coalesce(
            list_last(list_filter(ci.district_history, lambda h: h.valid_from <= q.quarter_end)).district,
            ci.district
        ) as district,
        year(q.quarter) - ci.birth_year as age
    from {{ index }} ci
    join quarters q on ci.valid_from <= q.quarter_end and (ci.valid_to is null or ci.valid_to >= q.quarter)
{%- else %}
    select null::varchar as citizen_key, null::date as quarter, null::bigint as birth_year,
        null::varchar as sex, null::varchar as district, null::bigint as age
    where false
{%- endif %}
)
{%- set present = [] %}
{%- set measured = {} %}
{%- for ind in indicators %}
{%- set part = panel_part(ind) %}
{%- if part is not none %}
{%- do present.append({'cte': 'p_' ~ ind.name, 'has': 'has_' ~ ind.name, 'measures': part.measures}) %}
{%- do measured.update({ind.name: part.measures}) %}
, p_{{ ind.name }} as ({{ part.sql }})
{%- endif %}
{%- endfor %}
{%- set household = 'economic_aid' in measured and index is not none %}
{%- if household %}
, p_household_aid as (
    select member.citizen_key, h.quarter, true as has_household_economic_aid
    from (
        select ci.household_key, a.quarter
        from p_economic_aid a join {{ index }} ci using (citizen_key)
        where a.has_economic_aid and ci.household_key is not null
        group by all
    ) h
    join {{ index }} member on member.household_key = h.household_key
    group by all
)
{%- do present.append({'cte': 'p_household_aid', 'has': 'has_household_economic_aid', 'measures': []}) %}
{%- endif %}
{%- if present %}
-- Every unit's part in one table, one row per person and quarter: a single join to the spine instead
-- of one per unit (each over every citizen-quarter on a 64-character key).
, person_quarter as (
    select citizen_key, quarter
    {%- for p in present %}
        , bool_or({{ p.has }}) as {{ p.has }}
        {%- for measure in p.measures %}, max({{ measure }}) as {{ measure }}{% endfor %}
    {%- endfor %}
    from (
    {%- for p in present %}
        {{ "union all by name " if not loop.first }}select * from {{ p.cte }}
    {%- endfor %}
    )
    group by citizen_key, quarter
)
{%- endif %}
select
    s.*
    , {{ "coalesce(pq.has_household_economic_aid, false)" if household else "null::boolean" }} as has_household_economic_aid
{%- for ind in indicators %}
    , {{ ("coalesce(pq.has_" ~ ind.name ~ ", false)") if ind.name in measured else "null::boolean" }} as has_{{ ind.name }}
{%- for name, _ in ind.measures %}
    , {{ ("coalesce(pq." ~ name ~ ", 0)") if name in measured.get(ind.name, []) else "null" }}::double as {{ name }}
{%- endfor %}
{%- endfor %}
from spine s
{%- if present %}
left join person_quarter pq on pq.citizen_key = s.citizen_key and pq.quarter = s.quarter
{%- endif %}
