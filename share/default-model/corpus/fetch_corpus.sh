#!/usr/bin/env bash
# Reproducibly fetch + extract the recommended EN/ZH pretraining corpus.
# Needs: apt-get (Debian 12 bookworm sources, after `apt-get update`), dpkg-deb, npm, python3 (stdlib only).
# usage: fetch_corpus.sh WORKDIR   (helper scripts expected next to this script)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
W="${1:?workdir}"; mkdir -p "$W"/{deb,x,npm,corpus/en,corpus/zh}; cd "$W"

# ---- Debian packages (versions pinned to bookworm) ----
DEBS="r-cran-janeaustenr=1.0.0-1 sword-text-web=426.0-1 dict-devil=1.0-13.1 dict-jargon=4.4.7-3.1"
( cd deb && apt-get download $DEBS )
for f in deb/*.deb; do p=$(basename "$f"); p=${p%%_*}; mkdir -p "x/$p"; dpkg-deb -x "$f" "x/$p"; done

python3 "$HERE/extract_janeaustenr.py" x/r-cran-janeaustenr/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb corpus/en
python3 "$HERE/extract_sword_ztext.py" x/sword-text-web/usr/share/sword/modules/texts/ztext/engWEB2015eb corpus/en/web-bible.txt
zcat x/dict-devil/usr/share/dictd/devil.dict.dz  | sed '/^00-database-/d' > corpus/en/devils-dictionary.txt
zcat x/dict-jargon/usr/share/dictd/jargon.dict.dz | sed '/^00-database-/d' > corpus/en/jargon-file.txt

# ---- npm package (MIT) ----
( cd npm && npm pack --silent chinese-poetry@2.0.1 >/dev/null 2>&1 && tar xzf chinese-poetry-2.0.1.tgz )
python3 "$HERE/extract_chinese_poetry.py" npm/package npm/zh-all
# Simplified-script subset (+ two small traditional-script classics); skip the 70 MB quantangshi + 9 MB yudingquantangshi
for c in songci yuanqu shijing lunyu chuci caocaoshiji nalanxingde shuimotangshi wudaishici youmengying mengxue sishuwujing; do
  cp "npm/zh-all/$c.txt" "corpus/zh/$c.txt"
done

# ---- license texts travel with the corpus ----
mkdir -p corpus/licenses
cp x/r-cran-janeaustenr/usr/share/doc/r-cran-janeaustenr/copyright corpus/licenses/r-cran-janeaustenr.copyright
cp x/sword-text-web/usr/share/doc/sword-text-web/copyright        corpus/licenses/sword-text-web.copyright
cp x/dict-devil/usr/share/doc/dict-devil/copyright                corpus/licenses/dict-devil.copyright
cp x/dict-jargon/usr/share/doc/dict-jargon/copyright              corpus/licenses/dict-jargon.copyright
cp npm/package/LICENSE                                            corpus/licenses/chinese-poetry.LICENSE

du -b corpus/en corpus/zh
( cd corpus && find en zh -type f | sort | xargs sha256sum )
