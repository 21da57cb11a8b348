# sisflow on the official Airflow 3 image: the runtime requirements (requirements.txt, pinned;
# no test tools, no embedded servers) and the sisflow package, installed at build time (never
# with _PIP_ADDITIONAL_REQUIREMENTS at start-up). Every service of the compose file and the
# Helm chart runs this one image.
FROM apache/airflow:3.3.2-python3.11

USER airflow
WORKDIR /opt/sisflow
COPY --chown=airflow:0 requirements.txt pyproject.toml ./
RUN pip install --no-cache-dir -r requirements.txt
COPY --chown=airflow:0 include ./include
RUN pip install --no-cache-dir --no-deps .

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 customers /opt/airflow/customers
WORKDIR /opt/airflow
