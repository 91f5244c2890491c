import Callback from "@/components/Callback";

export default function CallbackPage() {
  return <Callback />;
}
