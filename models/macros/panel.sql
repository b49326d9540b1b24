{#
  The citizen-quarter panel reads whatever each unit shares into the cross-unit zone. What a unit
  shares is its steward's decision (detail rows, per-person indicators per quarter, or nothing), and a
  withdrawn unit's tables disappear. So each indicator names candidate expressions with the columns
  they need, and the first one whose columns exist is used. A dataset that is absent gives NULL
  (unknown), never false.
#}

{% macro panel_relation(unit, dataset) %}
    {% if not execute %}{{ return(none) }}{% endif %}
    {{ return(adapter.get_relation(database='cross_unit', schema=unit, identifier=dataset)) }}
{% endmacro %}

{% macro panel_pick(candidates, columns) %}
    {% for expr, needs in candidates %}
        {% set ok = [] %}
        {% for col in needs %}{% if col | lower in columns %}{% do ok.append(col) %}{% endif %}{% endfor %}
        {% if ok | length == needs | length %}{{ return(expr) }}{% endif %}
    {% endfor %}
    {{ return(none) }}
{% endmacro %}

{# {sql: selecting (citizen_key, quarter, has_<name>, <measures>), measures: those available}, or none. #}
{% macro panel_part(ind) %}
    {% set rel = panel_relation(ind.unit, ind.dataset) %}
    {% if rel is none %}{{ return(none) }}{% endif %}
    {% set columns = adapter.get_columns_in_relation(rel) | map(attribute='name') | map('lower') | list %}
    {% if 'citizen_key' not in columns %}{{ return(none) }}{% endif %}
    {% set quarter = panel_pick(ind.quarter, columns) %}
    {% if quarter is none %}{{ return(none) }}{% endif %}
    {% set has = panel_pick(ind.has, columns) %}
    {% if has is none %}{{ return(none) }}{% endif %}
    {% set parts = [] %}
    {% for name, candidates in ind.measures %}
        {% do parts.append((name, panel_pick(candidates, columns))) %}
    {% endfor %}
    {% set sql %}
        select citizen_key, date_trunc('quarter', {{ quarter }})::date as quarter,
            {{ has }} as has_{{ ind.name }}
            {% for name, expr in parts %}, {{ expr if expr is not none else 'null' }} as {{ name }}{% endfor %}
        from {{ rel }}
        where citizen_key is not null
        group by all
    {% endset %}
    {% set available = [] %}
    {% for name, expr in parts %}{% if expr is not none %}{% do available.append(name) %}{% endif %}{% endfor %}
    {{ return({'sql': sql, 'measures': available}) }}
{% endmacro %}

{# What the panel reads: per indicator its dataset, and candidate expressions with the columns they need. #}
{% macro panel_indicators() %}
{% set by_delivery = ("strptime(_delivery, '%Y-%m')", ['_delivery']) %}
{% set indicators = [
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
{{ return(indicators) }}
{% endmacro %}

{# Lineage for dbt: every relation the panel may read (they need not exist; panel_part checks). #}
{% macro panel_sources() %}
-- depends_on: {{ source('cross_unit', 'citizen_index') }}
-- depends_on: {{ source('cross_socialtjanst', 'ekonomiskt_bistand') }}
-- depends_on: {{ source('cross_skola', 'inskrivning') }}
-- depends_on: {{ source('cross_vard_omsorg', 'hemtjanst') }}
-- depends_on: {{ source('cross_kontaktcenter', 'kontakter') }}
-- depends_on: {{ source('cross_e_tjanster', 'inlamningar') }}
-- depends_on: {{ source('cross_bygg_miljo', 'bygglov') }}
-- depends_on: {{ source('cross_arendehandelser', 'statushandelser') }}
{% endmacro %}

{# The household a person belongs to at the end of the quarter starting on ``quarter``. #}
{% macro panel_household_at(person, quarter) -%}
    list_last(list_filter({{ person }}.household_history,
        lambda h: h.valid_from < {{ quarter }} + interval 3 month)).household_key
{%- endmacro %}

{#
  The panel's inputs as CTEs, shared by the panel and its fingerprint: quarters, spine (every person
  registered in a quarter, with the district at its end), p_<indicator> (each shared dataset
  per person and quarter) and p_household_aid. only: none for every quarter, else the quarters (ISO
  dates) to compute. Returns {sql, present: [{cte, has, measures}], measured: {indicator: measures}}.
#}
{% macro panel_ctes(only=none) %}
    {% set dates = [] %}
    {% for q in only or [] %}{% do dates.append("date '" ~ q ~ "'") %}{% endfor %}
    {% set within = 'true' if only is none else ('quarter in (' ~ dates | join(', ') ~ ')' if dates else 'false') %}
    {% set index = panel_relation('main', 'citizen_index') %}
    {% set present = [] %}
    {% set measured = {} %}
    {% set sql %}
quarters as (
    -- complete: every month of the quarter is inside the platform's calendar. A quarter at either end
    -- of it is seen in part (a month or two of services), so discovery analyses complete quarters only.
    select distinct quarter, quarter + interval 3 month - interval 1 day as quarter_end,
        quarter >= (select min(month) from {{ ref('dim_month') }})
            and quarter + interval 2 month <= (select max(month) from {{ ref('dim_month') }}) as complete
    from {{ ref('dim_month') }}
    where {{ within }}
),
spine as (
{%- if index is not none %}
    -- The district at the quarter's end (or when the person left): a move later does not change a
    -- past quarter, so published history stays put between publishes. Most persons never moved: their
    -- one district is read without a lambda over the list (half the spine's time at 20 million rows).
    select ci.citizen_key, q.quarter, q.complete, ci.birth_year, ci.sex,
        coalesce(
            case when len(ci.district_history) <= 1
                then if(ci.district_history[1].valid_from <= q.quarter_end, ci.district_history[1].district, null)
                else list_last(list_filter(ci.district_history, lambda h: h.valid_from <= q.quarter_end)).district
            end,
            ci.district
        ) as district,
        year(q.quarter) - ci.birth_year as age
    from {{ index }} ci
    join quarters q on ci.valid_from <= q.quarter_end and (ci.valid_to is null or ci.valid_to >= q.quarter)
{%- else %}
    select null::varchar as citizen_key, null::date as quarter, null::boolean as complete, null::bigint as birth_year,
        null::varchar as sex, null::varchar as district, null::bigint as age
    where false
{%- endif %}
)
{%- for ind in panel_indicators() %}
{%- set part = panel_part(ind) %}
{%- if part is not none %}
{%- do present.append({'cte': 'p_' ~ ind.name, 'has': 'has_' ~ ind.name, 'measures': part.measures}) %}
{%- do measured.update({ind.name: part.measures}) %}
, p_{{ ind.name }} as (select * from ({{ part.sql }}) where {{ within }})
{%- endif %}
{%- endfor %}
{%- if 'economic_aid' in measured and index is not none %}
-- Aid reaches the household the applicant belongs to at the quarter's end, and whoever belongs to it
-- then: households are read from the index's history for the applicants and for those households'
-- members only, not for every citizen-quarter.
, p_household_aid as (
    with aid as (
        select {{ panel_household_at('ci', 'a.quarter') }} as household_key, a.quarter
        from p_economic_aid a join {{ index }} ci using (citizen_key)
        where a.has_economic_aid
    ),
    member as (
        select ci.citizen_key, ci.household_history, h.household_key
        from {{ index }} ci, unnest(ci.household_history) as t(h)
        where h.household_key in (select household_key from aid)
    )
    select m.citizen_key, aid.quarter, true as has_household_economic_aid
    from member m join aid using (household_key)
    where {{ panel_household_at('m', 'aid.quarter') }} = aid.household_key
    group by all
)
{%- do present.append({'cte': 'p_household_aid', 'has': 'has_household_economic_aid', 'measures': []}) %}
{%- endif %}
    {% endset %}
    {{ return({'sql': sql, 'present': present, 'measured': measured}) }}
{% endmacro %}

{# One number for a set of distinct rows; why a row's hash is hashed again: warehouse/layout.py content_digest. #}
{% macro content_digest(row) -%}
    bit_xor(hash(hash({{ row }})))
{%- endmacro %}

{#
  The panel is kept per quarter (citizen_quarter, incremental): each row carries its quarter's
  fingerprint (citizen_quarter_inputs) mixed with the panel model's own code, and a run computes and
  replaces only the quarters whose rows do not all carry the one expected now, drops the quarters no
  longer among the inputs, and leaves every other quarter's rows as they are.
#}
{% macro panel_expected(fingerprint='fingerprint') -%}
    hash({{ fingerprint }}, '{{ local_md5(model.raw_code) }}')
{%- endmacro %}

{% macro panel_stale_quarters() %}
    {% set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list %}
    select quarter
    from (select distinct quarter, {{ '_inputs' if '_inputs' in columns else 'null::ubigint as _inputs' }}
          from {{ this }}) stored
    full join (select quarter, {{ panel_expected() }} as expected
               from {{ ref('citizen_quarter_inputs') }}) now using (quarter)
    group by quarter
    having not bool_and(coalesce(stored._inputs = now.expected, false))
{% endmacro %}

{% macro panel_drop_stale() %}
    {% if is_incremental() %}
        delete from {{ this }} where quarter in ({{ panel_stale_quarters() }})
    {% endif %}
{% endmacro %}
