-- Lead time per step of the case process, per förvaltning, case type and the month the step ended;
-- the bottleneck is the step with the longest median in its förvaltning, case type and month.
with steps as (
    select forvaltning, case_type, 1 as step_order, 'mottaget → tilldelat' as step,
        assigned_at as ended_at, days_received_to_assigned as days
    from {{ ref('fct_case') }}
    union all
    select forvaltning, case_type, 2, 'tilldelat → beslutat', decided_at, days_assigned_to_decided
    from {{ ref('fct_case') }}
    union all
    select forvaltning, case_type, 3, 'beslutat → avslutat', closed_at, days_decided_to_closed
    from {{ ref('fct_case') }}
),
agg as (
    select
        forvaltning, case_type, step_order, step,
        date_trunc('month', ended_at)::date as month,
        count(*) as n_cases,
        median(days) as median_days,
        {{ exact_avg('days') }} as mean_days,
        quantile_cont(days, 0.9) as p90_days
    from steps
    where days is not null
    group by all
)
select *,
    median_days = max(median_days) over (partition by forvaltning, case_type, month) as is_bottleneck
from agg
