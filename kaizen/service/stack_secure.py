"""`kaizen up --secure`: after the SASL/SCRAM broker is up, create the topics as `admin`, apply
the role ACLs (streams/acls.py) and tell the user how each process logs in."""

from __future__ import annotations

import sys

from kaizen.infra.kafka import CREDENTIALS_FILE, KafkaLauncher
from kaizen.settings import Settings
from kaizen.streams.acls import apply_acls, sasl_config
from kaizen.streams.admin import create_topics


def secure_up(settings: Settings, launcher: KafkaLauncher) -> int:
    creds = launcher.credentials()
    admin = sasl_config("admin", creds["admin"])
    try:
        for report in create_topics(settings.bootstrap, settings.topic_prefix,
                                    settings.topic_partitions, client=admin):
            print(f"topic {report.name:<28} {report.action:<8} partitions={report.partitions}")
        count = apply_acls(settings.bootstrap, creds["admin"], settings.topic_prefix)
    except Exception as error:  # noqa: BLE001 - a clear message instead of a librdkafka trace
        print(f"kaizen up --secure: {error}", file=sys.stderr)
        return 1
    path = launcher.kafka_dir / CREDENTIALS_FILE
    print(f"acls: {count} bindings (recorder: episodes; processor: signals, patterns, "
          f"experiences; service: snapshots); passwords in {path} (mode 0600)")
    print("each process logs in with KAIZEN_KAFKA_USERNAME=<recorder|processor|service> and "
          "KAIZEN_KAFKA_PASSWORD=<its password>; `kaizen serve` (as service) starts its "
          "processors as KAIZEN_KAFKA_PROCESSOR_USERNAME=processor and "
          "KAIZEN_KAFKA_PROCESSOR_PASSWORD=<its password>")
    return 0
