-- The citizen-quarter panel for cross-unit discovery: one row per person registered in the quarter,
-- with what each unit shares about them that quarter. Person level, keyed by the central citizen key:
-- it stays in the cross-unit zone (database cross_unit, schema discovery) and reaches dashboards only
-- as disclosure-controlled aggregates through the publish step.
-- School absence is measured per term: a term's absence sits on the quarter the term ends in (VT: Q2,
-- HT: Q4), when it is known. has_high_absence: at least 15 % absence in that term (Skolverket's level
-- for high absence). has_merit, merit_value: the year-9 merit value (0-340) on the quarter it is delivered
-- in (July: the quarter after the school year); merit_value is 0 where has_merit is false, not a value.
-- has_household_economic_aid: someone in the person's household at the quarter's end (the citizen
-- index's household history) had economic aid that quarter; the aid contract shares the applicant
-- only, so this is how a pupil's exposure is seen. has_child_investigation: only where socialtjänst shares
-- child investigations as a derived per-person quarter flag (strong secrecy); its contract shares yearly
-- counts, which have no citizen key, so the column stays NULL (not shared) unless a steward approves one.

-- Kept per quarter: a run replaces only the quarters whose inputs changed (panel_stale_quarters); _inputs
-- is the fingerprint the quarter's rows were computed from, _written_at the run that wrote them (the
-- uniqueness test reads the quarters of the latest write only: the others were tested when written).
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='sync_all_columns',
    pre_hook="{{ panel_drop_stale() }}",
) }}
{{ panel_sources() }}
{%- set only = none %}
{%- if is_incremental() and execute %}
{%- set only = run_query(panel_stale_quarters()).columns[0].values() %}
{%- endif %}
{%- set panel = panel_ctes(only) %}
{%- set present, measured = panel.present, panel.measured %}
{%- set ctes = present | map(attribute='cte') | list %}
with {{ panel.sql }}
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
    , {{ "coalesce(pq.has_household_economic_aid, false)" if 'p_household_aid' in ctes else "null::boolean" }} as has_household_economic_aid
{%- for ind in panel_indicators() %}
    , {{ ("coalesce(pq.has_" ~ ind.name ~ ", false)") if ind.name in measured else "null::boolean" }} as has_{{ ind.name }}
{%- for name, _ in ind.measures %}
    , {{ ("coalesce(pq." ~ name ~ ", 0)") if name in measured.get(ind.name, []) else "null" }}::double as {{ name }}
{%- endfor %}
{%- endfor %}
    , {{ panel_expected('i.fingerprint') }} as _inputs
    , '{{ run_started_at }}'::timestamptz as _written_at
from spine s
{%- if present %}
left join person_quarter pq on pq.citizen_key = s.citizen_key and pq.quarter = s.quarter
{%- endif %}
join {{ ref('citizen_quarter_inputs') }} i on i.quarter = s.quarter
