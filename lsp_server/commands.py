"""The commands the server offers (``workspace/executeCommand``); their names are all
``initialize`` needs of them."""

COMMAND_PIN_ALL = "portside.pinAll"
COMMAND_CHECK_NOW = "portside.checkNow"
COMMAND_PUBLISH_DRY_RUN = "portside.publishDryRun"
COMMAND_PUBLISH = "portside.publish"
COMMAND_BUILD = "portside.build"
