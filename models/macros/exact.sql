{#- Sums and means of measured decimals (SEK, hours, merit points, days) in exact arithmetic. DuckDB adds
    doubles in whatever order its threads finish, so a double sum can differ in the last digit between
    two runs on the same data, and with it every fingerprint over the marts. Each value is taken at six
    decimals (finer than any contract's values; 0.09 s for days), summed as DECIMAL, exactly, and the
    result becomes a double once. Counts are exact already (BIGINT). -#}
{% macro exact_sum(expr, over=none) -%}
cast(sum(({{ expr }})::decimal(38, 6)){% if over %} over {{ over }}{% endif %} as double)
{%- endmacro %}

{% macro exact_avg(expr) -%}
cast(avg(({{ expr }})::decimal(38, 6)) as double)
{%- endmacro %}
