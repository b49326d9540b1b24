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
