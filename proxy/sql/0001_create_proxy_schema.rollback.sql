-- Rolls back the whole proxy: the schema with every post-apply object (CASCADE), then the
-- extension with the plproxy FDW, the cluster's SERVER convkey and its user mappings.

SET LOCAL lock_timeout = '5s';

DROP SCHEMA IF EXISTS convkey CASCADE;
DROP EXTENSION IF EXISTS plproxy CASCADE;
