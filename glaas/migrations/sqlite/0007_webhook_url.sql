-- A delivery names its hook, not its URL (whose path is the secret of a Slack or Discord hook):
-- glaas.webhooks.hook_id, "https://hooks.slack.com [3f9a0c1d2e4b]", scheme and host and a hash of
-- the whole URL, by which the server finds the URL in its own list. Rows kept from before are
-- rewritten (glaas_hook_id is hook_id itself, given to this connection by glaas.store.migrate),
-- with secure_delete on so that the URLs' bytes are zeroed in the file, not left in free space
-- (Debian's SQLite has it on by default; left on for this connection, as it is there).
-- Each delivery also gets the random id its tries are sent and signed with (X-Glaas-Delivery).
PRAGMA secure_delete = ON;
ALTER TABLE webhook_deliveries RENAME COLUMN url TO hook;
ALTER TABLE webhook_deliveries ADD COLUMN delivery TEXT NOT NULL DEFAULT '';
UPDATE webhook_deliveries SET hook = glaas_hook_id(hook), delivery = lower(hex(randomblob(16)));
