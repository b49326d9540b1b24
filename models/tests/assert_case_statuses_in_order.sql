-- A case reaches its statuses in order: mottaget <= tilldelat <= beslutat <= avslutat.
select case_id
from {{ ref('fct_case') }}
where assigned_at < received_at or decided_at < assigned_at or closed_at < decided_at
