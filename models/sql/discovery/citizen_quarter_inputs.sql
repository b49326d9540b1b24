-- What each quarter of the citizen-quarter panel is computed from, as one fingerprint per quarter:
-- the spine and every unit's part, row by row, and the SQL that derives them. A panel row depends only
-- on its quarter's spine and parts, so the panel rebuilds a quarter only when its fingerprint changes
-- (models/macros/panel.sql). No person level: a quarter, a number.
{{ panel_sources() }}
{%- set panel = panel_ctes() %}
with {{ panel.sql }}
select quarter, hash('{{ local_md5(panel.sql) }}', {{ content_digest('h') }}, count(*)) as fingerprint
from (
    select quarter, hash('spine', s) as h from spine s
    {%- for p in panel.present %}
    union all select quarter, hash('{{ p.cte }}', x) from {{ p.cte }} x
    {%- endfor %}
)
where quarter in (select quarter from quarters)
group by quarter
