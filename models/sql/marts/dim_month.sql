-- Months of the period with Swedish follow-up calendars: tertial (T1 jan-apr, T2 maj-aug, T3 sep-dec),
-- quarter and whether the month closes a tertial report.
with months as (
    select month from {{ ref('stg_ekonomi__utfall') }}
    union all
    select month from {{ ref('stg_kontaktcenter__kontakter') }}
    union all
    select month from {{ ref('stg_e_tjanster__inlamningar') }}
),
bounds as (
    select min(month) as first_month, max(month) as last_month from months
),
series as (
    select unnest(generate_series(first_month, last_month, interval 1 month))::date as month from bounds
)
select
    month,
    strftime(month, '%Y-%m') as month_label,
    year(month) as year,
    month(month) as month_of_year,
    ['januari', 'februari', 'mars', 'april', 'maj', 'juni', 'juli', 'augusti', 'september',
     'oktober', 'november', 'december'][month(month)] as month_name,
    (month(month) - 1) // 4 + 1 as tertial,
    -- year first, so that the label sorts as time wherever it is sorted as text (chart axes, pivots)
    year(month) || ' T' || ((month(month) - 1) // 4 + 1) as tertial_label,
    date_trunc('quarter', month)::date as quarter,
    year(month) || ' K' || quarter(month) as quarter_label,
    month(month) in (4, 8, 12) as closes_tertial,
    last_day(month) as month_end
from series
order by month
