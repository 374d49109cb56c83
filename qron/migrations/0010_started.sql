-- When the handler of the job's current lease started (its worker writes it with its next
-- batch of outcomes), or NULL: leased and not started yet. The rescuer returns an expired
-- lease whose job never started (it waited in a worker's buffer, or the worker died before
-- starting it) without counting an attempt, which the job never made. A remote worker's lease
-- counts as started when it is taken. Adding a nullable column rewrites nothing.
ALTER TABLE qron.jobs ADD COLUMN started_at timestamptz;
