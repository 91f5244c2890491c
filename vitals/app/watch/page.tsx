import Watch from "@/components/Watch";

export default function WatchPage() {
  return <Watch />;
}
