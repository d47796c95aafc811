"""Key providers: where private-key operations happen (gpg-agent, PKCS#11 tokens; soft keys live in
``engine.openpgp.provider``).

- :mod:`engine.keys.uri` parses ``--key`` values into typed specs.
- :mod:`engine.keys.agent` (over :mod:`engine.keys.assuan`) and :mod:`engine.keys.pkcs11` do the raw
  secret step: RSA PKCS#1 v1.5 decryption, ECDH shared secret.
- :mod:`engine.keys.providers` turns them into the OpenPGP ``KeyProvider`` Protocol.

Submodules are imported on use: python-pkcs11 is needed only for ``pkcs11:`` keys.
"""
