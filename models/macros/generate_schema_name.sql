{# A model's schema is its folder's schema as written (marts, staging), not target_schema + '_' + it. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name if custom_schema_name else target.schema }}
{%- endmacro %}
