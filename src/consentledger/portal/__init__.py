"""The data subject's portal: its EIP-712 sign-in message and the page's static assets (`static/`)."""
