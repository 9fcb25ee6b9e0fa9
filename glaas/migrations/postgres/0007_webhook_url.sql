-- A delivery names its hook, not its URL (whose path is the secret of a Slack or Discord hook):
-- glaas.webhooks.hook_id, "https://hooks.slack.com [3f9a0c1d2e4b]", scheme and host (without
-- user:password@) and the first 12 hex digits of the SHA-256 of the whole URL, by which the
-- server finds the URL in its own list. Rows kept from before are rewritten by the same rule
-- (its pattern is webhooks._ORIGIN). Their old versions stay in the table's file until it is
-- vacuumed: run `VACUUM webhook_deliveries` after upgrading to drop them.
-- Each delivery also gets the random id its tries are sent and signed with (X-Glaas-Delivery).
ALTER TABLE webhook_deliveries RENAME COLUMN url TO hook;
ALTER TABLE webhook_deliveries ADD COLUMN delivery TEXT NOT NULL DEFAULT '';
UPDATE webhook_deliveries SET
    hook = coalesce(
        (SELECT m[1] || m[2]
         FROM regexp_match(hook, '^([A-Za-z][A-Za-z0-9+.-]*://)(?:[^/?#]*@)?([^/?#@]*)') AS m),
        '?'
    ) || ' [' || left(encode(sha256(convert_to(hook, 'UTF8')), 'hex'), 12) || ']',
    delivery = replace(gen_random_uuid()::text, '-', '');
