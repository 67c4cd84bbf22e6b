from . import test_install
from . import test_ledger
from . import test_ledger_concurrency
from . import test_ledger_performance
from . import test_ledger_pos
from . import test_pos_sync
from . import test_stages
from . import test_ui
