"""An emulated OpenPGP smart card (jcecard) in a virtual reader (vpcd) of a private pcscd, for the real
scdaemon: :mod:`.bridge` (the card side of vpcd), :mod:`.rig` (start and stop everything, make the card key)
and the session fixture ``emulated_card`` in :mod:`.fixtures`."""
