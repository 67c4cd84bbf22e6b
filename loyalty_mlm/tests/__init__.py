from . import test_install
from . import test_ledger
from . import test_ui
