-- Case flow per förvaltning, case type and month (Visuell styrning): inflow, throughput, the backlog
-- awaiting a decision at month end, and cases past their service promise. Counts add up over case
-- types and förvaltningar, so the publish step can add margins.
with months as (
    select month, month_end from {{ ref('dim_month') }}
),
cases as (
    select * from {{ ref('fct_case') }}
),
per_month as (
    select
        c.forvaltning, c.case_type, m.month,
        count(*) filter (date_trunc('month', c.received_at) = m.month) as n_received,
        count(*) filter (date_trunc('month', c.decided_at) = m.month) as n_decided,
        count(*) filter (date_trunc('month', c.closed_at) = m.month) as n_closed,
        count(*) filter (
            c.first_seen_at < m.month_end + interval 1 day
            and (c.decided_at is null or c.decided_at >= m.month_end + interval 1 day)
        ) as n_backlog,
        count(*) filter (
            c.first_seen_at < m.month_end + interval 1 day
            and (c.decided_at is null or c.decided_at >= m.month_end + interval 1 day)
            and c.promise_due_at < m.month_end + interval 1 day
        ) as n_backlog_past_promise,
        count(*) filter (date_trunc('month', c.decided_at) = m.month and not c.decided_within_promise)
            as n_decided_late,
        median(c.days_to_decision) filter (date_trunc('month', c.decided_at) = m.month)
            as median_days_to_decision
    from cases c
    cross join months m
    where c.first_seen_at < m.month_end + interval 1 day
      and (c.closed_at is null or c.closed_at >= m.month)
    group by all
)
select * from per_month
