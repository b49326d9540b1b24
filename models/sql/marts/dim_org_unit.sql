-- The organisation tree: kommun -> förvaltning -> enhet. Enheter are those the finance system books on;
-- förvaltningar also come from the KPI catalogue and the case hub, so every fact row has a parent.
with enheter as (
    select distinct forvaltning, enhet from {{ ref('stg_ekonomi__utfall') }}
),
forvaltningar as (
    select forvaltning from enheter
    union
    select forvaltning from {{ ref('kpi_catalogue') }} where forvaltning is not null
    union
    select distinct forvaltning from {{ ref('stg_arendehandelser__statushandelser') }}
),
catalogue_enheter as (
    select forvaltning, enhet from {{ ref('kpi_catalogue') }} where enhet is not null
    union
    select forvaltning, enhet from enheter
)
select 'kommun' as org_unit_id, 'kommun' as level, '{{ var("kommun") }}' as name,
    null::varchar as parent_id, null::varchar as forvaltning, null::varchar as enhet, 0 as depth
union all
select forvaltning, 'förvaltning', forvaltning, 'kommun', forvaltning, null, 1 from forvaltningar
union all
select {{ org_unit_id('forvaltning', 'enhet') }}, 'enhet', enhet, forvaltning, forvaltning, enhet, 2
from catalogue_enheter
