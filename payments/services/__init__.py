"""Payment writes: `stored_value` (gift cards, store credit, holds), `tenders` (order payments
through providers), `webhooks` (provider events in)."""
