-- What an operator can do to an account (the admin listener and the `users` command).

-- A disabled account signs in nowhere: set by an operator, with an optional end and a reason.
alter table users add column disabled_at bigint;        -- ms since the Unix epoch; null: enabled
alter table users add column disabled_until bigint;     -- ms; null: until an operator enables it
alter table users add column disabled_reason text;      -- the operator's words, for operators

-- Who did it, when an operator did: the admin key's name (or `cli:<user>` for the command).
alter table security_events add column actor text;
