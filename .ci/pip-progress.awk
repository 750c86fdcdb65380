# pip's output kept to progress, for ./run and bench/peers/setup_feast.sh: one line per package collected or built
# (with pip's download bars) and the summary. Dropped: the wall of "Requirement already satisfied" / "Using cached"
# lines, pip's started/finished spinner lines, the note about the user site's location, uninstall chatter, and
# setuptools' "Editable installation" notice. That notice is informational and comes from the layout itself: the
# folders map onto the package (sdk/ is `skewless`, adapters/ `skewless.adapters`, ...), which setuptools can only
# install editable through its import hook (a "meta path finder"), and it says so on every build. Its block runs
# from the BuildBackendWarning line to the source line it points at (`with strategy, WheelFile`).
/BuildBackendWarning: Editable installation/ { skip = 1; next }
skip && /with strategy, WheelFile/ { skip = 0; next }
skip && ++skipped > 20 { skip = 0 }   # not the block we know: show the rest
skip { next }
/^\[notice\]|^Requirement already satisfied|^  Using cached|^WARNING: Location|^Looking in|: started$|: finished with status|^  Created wheel|^  Stored in directory|^ *$/ { next }
/^  Attempting uninstall|^    Uninstalling |^    Found existing installation|^      Successfully uninstalled/ { next }
{ print; fflush() }
