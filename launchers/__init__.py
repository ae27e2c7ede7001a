"""Command-line launchers (also installed as the ``mame-tf-*`` console commands, see ``mame_tf.cli``)."""
