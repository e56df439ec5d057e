"""A local Chorus Pro (AIFE exchange system) for the sandbox: `raccord sandbox`.

It plays AIFE on loopback for every connection of a gateway configuration, with AIFE's sandbox
certificates (`certs/sandbox/aife-*.pem` + `.key`, the connection's `certificates.partner`),
reusing the project's own protocol code (never a second implementation):

* AS2 (`as2side`): AIFE's listener at the sheet's `network.aife`, AIFE's sender to the gateway's
  listener (`network.partner`). A message must be signed by *that* connection's client
  certificate; another connection's certificate is refused with a negative MDN.
* SFTP (`sftpside`): AIFE's server (one login, the connection's client-certificate key only;
  deposits in `/out/<CODE>/`) and AIFE's client pushing to the gateway's listener. AIFE's host
  key is its sandbox key; `raccord sandbox --prepare` writes the `known_hosts` pin beside it.
* PeSIT E over mutual TLS (`pesitside`): AIFE's server (client certificate pinned to the
  connection's, PI 12 = interface code) and AIFE's requester pushing to the gateway's server.

What it does, as Chorus Pro does (`desk`): a code the connection does not subscribe to is refused
at the transfer; every accepted deposit gets an integration report (INTEGRE, or REJETE with a
reason for malformed XML or a format that does not match the code), then lifecycle statuses over
time (DEPOSEE → MISE_A_DISPOSITION → SERVICE_FAIT → MANDATEE → MISE_EN_PAIEMENT, with a
configurable share cut short by REJETEE or SUSPENDUE with a reason); on G2B connections it issues
invoices and answers each status the gateway returns with its report.

Where Chorus Pro's real parameters are not public (domain.md §7), the simulator follows the
gateway's documented defaults, and so proves only that both ends agree with *those* defaults:
AS2 names AIFE-QUAL/AIFE-PROD and the Part ID, SHA-256 / AES-256-CBC / compression, signed
synchronous MDNs; file names `<code>_<id>.<ext>`; SFTP logins = Part ID (ours) and connection
name (AIFE's on our listener), the `/out/<CODE>/` layout of our own SFTP server; PeSIT ids = Part
ID and `CPRO`, the sheet's password (none in the sandbox), PI 12 = the code; integration-report
code `CSO…` mirroring the `FSO…` code; report and lifecycle XML shaped for the gateway's reader
`gateway.correlation_xml` (`NomFichier`, `Statut`, `Motif`, `NumeroFacture`, `DateStatut`) — not
Chorus Pro's schemas, which are not public; G2B codes are the sandbox placeholders
XGB0001A/2A/3A; timings in seconds, not days.

Its state (deposits received, flows owed and when) lives in its own SQLite file under
`var/simulator/`, so the gateway may be killed and restarted under a running simulator.
"""
