{# The org tree's key: 'kommun', '<förvaltning>' or '<förvaltning> / <enhet>' (readable in filters and RLS). #}
{% macro org_unit_id(forvaltning, enhet) -%}
    case
        when {{ forvaltning }} is null then 'kommun'
        when {{ enhet }} is null then {{ forvaltning }}
        else {{ forvaltning }} || ' / ' || {{ enhet }}
    end
{%- endmacro %}

{% macro org_level(forvaltning, enhet) -%}
    case when {{ forvaltning }} is null then 'kommun' when {{ enhet }} is null then 'förvaltning' else 'enhet' end
{%- endmacro %}
