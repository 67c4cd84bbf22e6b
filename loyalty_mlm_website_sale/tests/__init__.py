from . import test_webshop
