"""The build stage: seeds in the store become feeds, archives and pages under feeds/."""
