"""The script EMR Serverless runs for a skewless job (``jobDriver.sparkSubmit.entryPoint``).

``skewless submit`` uploads this file under the stack's ``jobs_uri`` and names it as the run's entry point, with
``--job <JobSpec JSON>`` as its argument. It only hands over to ``skewless.jobs.main``, which runs the job through the
ordinary SDK with the engine the config names; so the skewless package (with its Spark engine's dependencies) must be
importable by the driver's Python: a custom image, or a packed virtualenv (docs/emr-serverless.md).
"""

import sys

from skewless.jobs import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
