-- One Postgres server, two databases: Airflow's metadata ("airflow", made by the image) and
-- sisflow's import database. sisflow migrates its own schema on first connection.
CREATE DATABASE sisflow ENCODING 'UTF8' TEMPLATE template0;
