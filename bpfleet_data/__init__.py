"""bpfleet's data: the built-in programs (programs/) and the Ansible playbooks (playbooks/).

No code: core/resources.py finds these through importlib.resources. In the repository both are
symlinks to the top-level folders (the design card keeps programs/ and playbooks/ at the top);
the wheel build follows them, so an installed bpfleet carries real copies here.

Why a data package of symlinks rather than a setuptools package-dir mapping of programs/ and
playbooks/ themselves: a mapped package needs an __init__.py inside those folders, and
setuptools' editable-install finder only maps packages with one; the symlinks keep the folders
untouched and behave the same in a checkout, an editable install and a wheel.
"""
