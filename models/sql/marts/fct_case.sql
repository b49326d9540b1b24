-- One row per case from the case hub's status events: when each status was reached, the days each
-- step took and whether the case was decided within its service promise (seed service_promises).
-- Cases received before the first delivery have no 'mottaget' event: first_seen_at stands in.
with cases as (
    select
        case_id,
        any_value(forvaltning) as forvaltning,
        any_value(case_type) as case_type,
        any_value(source_system) as source_system,
        min(event_at) filter (status = 'mottaget') as received_at,
        min(event_at) filter (status = 'tilldelat') as assigned_at,
        min(event_at) filter (status = 'beslutat') as decided_at,
        min(event_at) filter (status = 'avslutat') as closed_at,
        min(event_at) as first_seen_at
    from {{ ref('stg_arendehandelser__statushandelser') }}
    group by case_id
)
select
    c.*,
    coalesce(p.promise_days, {{ var('service_promise_default_days') }}) as promise_days,
    date_diff('second', received_at, assigned_at) / 86400.0 as days_received_to_assigned,
    date_diff('second', assigned_at, decided_at) / 86400.0 as days_assigned_to_decided,
    date_diff('second', decided_at, closed_at) / 86400.0 as days_decided_to_closed,
    date_diff('second', received_at, decided_at) / 86400.0 as days_to_decision,
    received_at + to_days(coalesce(p.promise_days, {{ var('service_promise_default_days') }})) as promise_due_at,
    case when received_at is not null and decided_at is not null
        then decided_at <= received_at + to_days(coalesce(p.promise_days, {{ var('service_promise_default_days') }}))
    end as decided_within_promise
from cases c
left join {{ ref('service_promises') }} p using (case_type)
