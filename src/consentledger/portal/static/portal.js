// placeholder: the portal page helper replaces this
