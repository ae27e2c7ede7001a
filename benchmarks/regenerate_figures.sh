#!/usr/bin/env sh
# Regenerate every committed figure and table in results/ from the CSVs in results/.
#   sh benchmarks/regenerate_figures.sh
# Long-format per-seed files (results/<name>_runs.csv) are drawn with a 10-iteration moving average and
# 95% bootstrap bands; the older results, kept only as per-iteration aggregates over seeds
# (<name>_curves.csv) and per-seed final numbers (<name>_final.csv), are drawn unsmoothed.
set -eu
cd "$(dirname "$0")/.."
plot="python benchmarks/plot_results.py"
algos="MAME=mame,MAML-VPG=maml_vpg,MAML-TRPO=maml_trpo,ProMP=promp,E-MAML=emaml"
point="300 iterations of 40 tasks x 20 episodes, horizon 100"

$plot --aggregate=results/point_corner_strict --labels="$algos" \
    --title="point_corner_strict" --budget="$point; seeds 0, 1, 2"
$plot --aggregate=results/point_corner_strict_ablations \
    --labels="MAME=mame,VPG-Inner loop=vpg_inner_loop,Reward self-supervision=reward_self_supervision,Vanilla DiCE=vanilla_dice,E-MAML based=emaml_based" \
    --title="point_corner_strict, MAME ablations" --budget="$point; seeds 0, 1, 2"
$plot --aggregate=results/point_corner --labels="$algos,MAME alpha 1 (old default)=mame_alpha1" \
    --title="point_corner (farmable reward)" --budget="$point; seeds 0, 1, 2"
$plot --aggregate=results/cheetah_dir_small --labels="$algos,MAME alpha 30=mame_alpha30" \
    --title="cheetah_dir, reduced budget" \
    --budget="300 iterations of 20 tasks x 10 episodes, horizon 200; seeds 0, 1, 2 or seed 0 only"
# The paper's Fig. 2 on the MuJoCo families: the runs of launchers/compare.py at the budgets below
# (the README's "Fig. 2 on the MuJoCo families" gives the commands); seeds 0, 1, 2.
cheetahs="300 iterations of 20 tasks x 10 episodes, horizon 200; seeds 0, 1, 2"
ant="200 iterations of 10 tasks x 10 episodes, horizon 200; seeds 0, 1, 2"
for f in results/*_runs.csv; do
    [ -e "$f" ] || continue
    case "$(basename "$f" _runs.csv)" in
        cheetah_dir|cheetah_vel) $plot --csv="$f" --budget="$cheetahs" ;;
        ant_dir) $plot --csv="$f" --budget="$ant" ;;
        *) $plot --csv="$f" ;;
    esac
done
