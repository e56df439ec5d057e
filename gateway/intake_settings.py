"""The `intake:` section: the back office's drop folder, and delivery of received flows to it.

The models live in `gateway/config.py` (they are part of the frozen `Config` tree); this module
names them for the intake work.

```yaml
intake:
  drop_dir: ../../var/drop        # <drop>/<environment>/<CODE>/<file> or <drop>/<env>/<CODE>_<file>
  poll_interval: 2                # seconds between two scans of the drop folder
  settle_seconds: 1               # a file must be this old (mtime) before it is taken
  delivery:
    codes: []                     # reception codes delivered here; empty = every reception code
    folder: ../../var/outgoing    # <folder>/<CODE>/<message id>_<file name>, written atomically
    webhook:
      url: https://backoffice.example/raccord/flows
      secret: ${RACCORD_WEBHOOK_SECRET}   # or secret_file
      timeout: 30
    retry: {max_attempts: 10, base_delay: 10, max_delay: 3600}
```
"""

from __future__ import annotations

from gateway.config import DeliverySettings, IntakeSettings, WebhookSettings

__all__ = ["DeliverySettings", "IntakeSettings", "WebhookSettings"]
