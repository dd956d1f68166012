"""Render the IAM policy documents beside this file for roles made by hand (gpuorch.deploy.policies says how):

    set -a; . /etc/gpuorch/gpuorch.env; set +a
    .venv/bin/python configs/deploy/iam/render.py --account-id 123456789012 --out build/iam

`gpuorch deploy` needs none of this: its stack makes the roles from the same documents.
"""

import sys

from gpuorch.deploy.policies import main

if __name__ == "__main__":
    sys.exit(main())
