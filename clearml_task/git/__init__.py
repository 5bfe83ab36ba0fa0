"""Everything that drives git, named after what it does (as pip's vcs/git.py): `run` (the one runner and
its errors), `urls` (URL rules, credentials removed), `repository` (reading a local repository),
`snapshot` (a temporary index over one), `remote` (ls-remote, partial fetches, blobs in batch) and
`checkout` (the launcher's mirror, work tree and patch). Callers decide what to capture or check out."""
