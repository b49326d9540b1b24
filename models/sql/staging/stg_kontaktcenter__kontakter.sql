-- Contacts by channel and topic (caller dropped: the KPIs count contacts, not people).
select
    contact_id,
    contacted_at,
    date_trunc('month', contacted_at)::date as month,
    channel,
    topic,
    solved_first_contact
from {{ source('kontaktcenter', 'kontakter') }}
