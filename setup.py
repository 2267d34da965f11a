# The nbdev 2 standard setup file: everything it needs is read from settings.ini.
from configparser import ConfigParser
import setuptools, shlex

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + "lib_name lib_path user branch license status min_python audience language".split()
for o in expected: assert o in cfg, f"missing expected setting: {o}"
setup_cfg = {o: cfg[o] for o in cfg_keys}

licenses = {'apache2': ('Apache-2.0', None)}  # an SPDX expression (license classifiers are deprecated)
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature']
py_versions = '3.10 3.11 3.12 3.13'.split()

requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
export_requirements = shlex.split(cfg.get('export_requirements', ''))
min_python = cfg['min_python']
# Package data kept where the checkout has it (configs/, reports/) and installed inside the package, so that a wheel,
# an sdist or a git URL gives a complete install: neuroseg.core.packaged_dir finds them there. New files in configs/
# (*.yaml, *.json) ship without a change here.
# nbdev's convention: `lib_name` is the distribution's name on PyPI (neuroseg-3d), `lib_path` the import package (neuroseg).
pkg = cfg['lib_path']
package_data = {f"{pkg}.configs": ("configs", ["*.yaml", "*.json"]),
                f"{pkg}.templates": ("reports", ["train.ipynb", "evaluate.ipynb", "data.ipynb", "bench.ipynb", "preprocess.ipynb", "case.ipynb"])}
lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))

setuptools.setup(
    name=cfg['lib_name'],
    license=lic[0],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title(),
                 'Topic :: Scientific/Engineering :: Medical Science Apps.',
                 ] + ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(min_python):]]
                   + (['License :: ' + lic[1]] if lic[1] else []),
    url=cfg['git_url'],
    # neuroseg.models holds the shipped models (05c_pretrained): data only, declared as a package of its own
    # neuroseg.static holds NiiVue's browser build and its licence (08a_viewer): data only, a package of its own too
    packages=setuptools.find_packages(include=[pkg, pkg + '.*']) + [f"{pkg}.models", f"{pkg}.static"] + list(package_data),
    package_dir={name: folder for name, (folder, _) in package_data.items()},
    package_data={**{name: files for name, (_, files) in package_data.items()},
                  f"{pkg}.models": ['*.pt', 'models.json'],
                  f"{pkg}.static": ['niivue.umd.js', 'NIIVUE_LICENSE'],
                  pkg: ['cli.json']},   # the console scripts' recorded parsers (00_cli)
    include_package_data=True,
    install_requires=requirements,
    extras_require={'dev': dev_requirements + export_requirements, 'export': export_requirements},
    python_requires='>=' + min_python,
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={
        'console_scripts': cfg.get('console_scripts', '').split(),
        'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d'],
    },
    **setup_cfg)
