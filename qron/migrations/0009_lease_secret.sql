-- A remote worker's lease carries 128 random bits, which its outcomes and heartbeats must
-- present: the lease counter alone (`lease_token`) is guessable. Set by a remote lease, cleared
-- by every other lease; NULL never matches. Adding a nullable column rewrites nothing.
ALTER TABLE qron.jobs ADD COLUMN lease_secret uuid;
